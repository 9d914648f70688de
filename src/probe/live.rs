//! The live probe: a bounded burst of MSG_ZEROCOPY traffic with completions read from the
//! error queue, and the same traffic copied, to measure what zerocopy gains.
