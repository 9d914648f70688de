//! Host identity, kernel release, sysctls and the probing process's limits.
