//! siuctl.
