"""Scheduling: the timetable of jmon, the pools and watchers of sched, the definitions."""
