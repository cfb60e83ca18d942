//! The Data Prep expression language: lexer, parser and evaluator of calculated fields.
