"""Operations (issue 10): structured logs, health probes, the request edge of the machine surfaces."""
