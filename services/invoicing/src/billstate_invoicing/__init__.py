"""Invoice register, validation, dedupe and DLQ; turns clock ticks into invoice.aged events."""
