//! Tests against real sled databases in temporary directories.
