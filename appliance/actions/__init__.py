"""Actions: what the appliance does with a decision (MQTT now; notifiers, printer and GPIO next)."""
