"""Operations: metrics and structured logs, fed named, already-safe fields by the pipeline."""
