//! The Data Prep function library used by calculated fields.
