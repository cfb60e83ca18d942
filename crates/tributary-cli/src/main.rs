//! The `tributary` binary: parses the command line, sets up logging, dispatches to the engine,
//! the API and the spec validator, prints error chains and picks the exit code.

fn main() {}
