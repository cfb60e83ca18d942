//! JSON records (NDJSON page bytes) to Arrow `RecordBatch`es: schema inference, evolution and widening.
