"""What every callbridge service imports: the event contract, the bus, settings, clock, logging."""
