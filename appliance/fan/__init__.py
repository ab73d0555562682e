"""The ``layerwatch-fan`` service: CPU temperature to fan duty, separate from the detector so that
cooling survives a detector crash. :mod:`.curve` (duty from temperature), :mod:`.backends` (gpiozero
PWM pin, Jetson pwm-fan sysfs node), :mod:`.service` (the loop, its state file and sd_notify)."""
