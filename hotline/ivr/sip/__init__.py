"""SIP signalling and RTP media for the IVR, on the service's event loop (see server.py and rtp.py)."""
