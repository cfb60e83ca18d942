//! Target schemas: JSON schema (XDM-like) to Arrow types, and coercion to destination types.
