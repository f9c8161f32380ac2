"""The Textual dashboard for one run."""
