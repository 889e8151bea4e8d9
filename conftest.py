# Nameko runs on eventlet; since 2.14 its pytest plugin no longer patches, so do it first.
import warnings

warnings.filterwarnings("ignore", message="\\s*Eventlet is deprecated")
import eventlet  # noqa: E402

eventlet.monkey_patch()
