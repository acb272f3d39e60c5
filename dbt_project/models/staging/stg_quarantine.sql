-- Every record the landed assets could not land, from every source: where it came from, its raw
-- text (cut to 2,000 characters for an oversized line) and why. Fix the file, then land its hour again.
select
    source,
    arrival_hour,
    source_file,
    source_line,
    split_part(reason, '; ', 1) as first_reason,
    reason,
    raw
from {{ lake_quarantine() }}
