"""MLflow tracking of a sweep: where its runs are kept (store), what they hold (records) and the
Ray Tune callback that writes them as the trials go (callback)."""
