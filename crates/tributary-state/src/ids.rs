//! Identifier newtypes, so that a run id is never passed where a flow id is expected.
//!
//! The store treats every id as opaque text; the engine and the API choose the format.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of a flow (the Flow Service `flows` entity).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FlowId(String);

/// The id of one run of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(String);

/// The id of a batch: the set of files one run of one window writes to a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BatchId(String);

/// The id of a dataset (the target connection's `dataSetId`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatasetId(String);

impl FlowId {
    pub fn new(id: impl Into<String>) -> FlowId {
        FlowId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for FlowId {
    fn from(id: &str) -> FlowId {
        FlowId(id.to_owned())
    }
}

impl From<String> for FlowId {
    fn from(id: String) -> FlowId {
        FlowId(id)
    }
}

impl RunId {
    pub fn new(id: impl Into<String>) -> RunId {
        RunId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for RunId {
    fn from(id: &str) -> RunId {
        RunId(id.to_owned())
    }
}

impl From<String> for RunId {
    fn from(id: String) -> RunId {
        RunId(id)
    }
}

impl BatchId {
    pub fn new(id: impl Into<String>) -> BatchId {
        BatchId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for BatchId {
    fn from(id: &str) -> BatchId {
        BatchId(id.to_owned())
    }
}

impl From<String> for BatchId {
    fn from(id: String) -> BatchId {
        BatchId(id)
    }
}

impl DatasetId {
    pub fn new(id: impl Into<String>) -> DatasetId {
        DatasetId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatasetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for DatasetId {
    fn from(id: &str) -> DatasetId {
        DatasetId(id.to_owned())
    }
}

impl From<String> for DatasetId {
    fn from(id: String) -> DatasetId {
        DatasetId(id)
    }
}
