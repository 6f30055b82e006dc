"""Incidents (事件): outages published from the console, clusters of reports that point to one cause,
restoration that closes the loop for every resident who reported, the residents bound to accounts who
hear of outages in their area, and the public-opinion watch (舆情)."""
