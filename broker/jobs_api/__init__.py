"""The jobs API in domain terms (behind JobService): submit, read, watch, cancel, explain."""
