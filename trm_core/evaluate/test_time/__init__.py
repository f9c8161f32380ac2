"""Test-time compute: how a trained model is run when it answers (more supervision steps, halting, noisy
parallel trajectories), a sweep over those settings, and how far the halting head can be trusted."""
