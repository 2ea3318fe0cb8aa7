"""CrossGuard policy pack of dms-event-bus (`pulumi preview --policy-pack policy`)."""
