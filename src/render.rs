//! renderers
