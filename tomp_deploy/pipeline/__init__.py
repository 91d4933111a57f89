"""Steps that combine the runtime with export and engine building (the forms a model is needed in),
shared by the CLI and the recorded benchmarks."""
