//! The device stack of the diagnosed interface: the device and everything below it.
