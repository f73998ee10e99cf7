"""The parts of bench/soak.py: the stack it runs (stack), what it records (record), the
clients that load it (workload), the faults it injects (faults) and the checks at the end
(checks). docs/soak.md describes the run."""
