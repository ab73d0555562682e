"""GPIO hardware: the composite board of status LED, buzzer, relay and button, and the fan."""
