"""crm2stream: an event-sourced stream processor for social CRM."""

__version__ = "0.1.0"
