"""The ComputeNet site agent: advertises a centre's capacity and runs the jobs placed there."""
