"""Everything MQTT, one module per concern.

* :mod:`.client`: the paho connection (:class:`~.client.MqttPublisher`): availability, last will,
  reconnects, PUBACK tracking;
* :mod:`.sink`: the action sink the service wires in (state, events, telemetry, discovery, commands);
* :mod:`.notifier`: alert events through the outbox, and the command subscription;
* :mod:`.commands`: ``.../set`` topics parsed into service commands;
* :mod:`.discovery`: the Home Assistant discovery message.

Wiring: :mod:`.sink` is listed in :data:`appliance.service.wiring.SINK_MODULES`.
"""
