"""Training one model: its state, the epoch's step and evaluation maths, the fused engine, schedules."""
