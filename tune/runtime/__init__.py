"""What runs under the engine: storage URLs and their locks, worker liveness, process groups and
stop signals."""
