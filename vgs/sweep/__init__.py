"""The Ray side of vgs: a sweep's options (options), the Ray Tune wiring (tune_setup), one trial
(trial) and its errors (trial_errors), the halving scheduler (halving), MLflow tracking (tracking/),
terminal progress (output), the plan without Ray (dry_run), Ray's storage (storage), the phases and
summary (phases), starting Ray on loopback or joining a cluster (ray_start), the driver (driver) and
its command line (cli).  Only this subpackage (and the overhead benchmark) imports Ray."""
