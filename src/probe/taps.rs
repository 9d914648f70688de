//! Packet taps: every packet socket in every namespace, its owners, and its real
//! PACKET_IGNORE_OUTGOING setting read through pidfd_getfd.
