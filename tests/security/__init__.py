"""Tests that attack powercrud the way bad input and attackers do (issue 5: bad input, security)."""
