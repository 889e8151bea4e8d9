# Nameko runs on eventlet; since 2.14 its pytest plugin no longer patches, so do it first.
import eventlet

eventlet.monkey_patch()
