"""wav2tok: a learned audio tokenizer for query-by-example search."""
