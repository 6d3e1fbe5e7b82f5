"""`dlq list | show | stats | replay`: read the dead-letter topic without a group, render it, redrive it."""
