"""Reading a sweep's results: the verdict's statistics (verdict), the terminal tables (tables), the
plots (plots), the paper-style report (report) and retrieval with a trained model (retrieve)."""
