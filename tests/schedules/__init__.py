"""Tests for durable.schedules: pure clocks, filters, adjustments and schedules."""
