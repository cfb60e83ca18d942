//! Data Prep mapping sets compiled into an executable plan over Arrow batches, and row errors.
