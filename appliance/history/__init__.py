"""Print history: job records, saved frames, timelapses, retention and job notifications.

* :mod:`.jobs`: one :class:`~.jobs.JobRecord` per print, kept in ``<state_dir>/history/jobs.json``;
* :mod:`.tracker`: the linked printer's polled state turned into job happenings (start, progress, end);
* :mod:`.frames`: frames saved as ``<images_dir>/<camera>/<job>/<YYYYmmddTHHMMSS>_<usec>_<job>.jpg``;
* :mod:`.space`: the free-space floor below which nothing is saved;
* :mod:`.timelapse`: the H.264 MP4 made with ffmpeg when a job ends;
* :mod:`.retention`: frames, timelapses and alert evidence deleted after their retention;
* :mod:`.messages`: the job notifications (Telegram, Discord, MQTT events);
* :mod:`.sink`: the action sink that wires them into the service.

Wiring: :mod:`.sink` is listed in :data:`appliance.service.wiring.SINK_MODULES`.
"""
