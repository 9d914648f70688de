//! TEMPORARY stub from the lead; replace wholesale.
pub struct SinkOptions {
    pub max_conns: usize,
    pub idle_timeout: std::time::Duration,
    pub duration: Option<std::time::Duration>,
}
pub fn run(_listen: std::net::SocketAddr, _opts: SinkOptions) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
