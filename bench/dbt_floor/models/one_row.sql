-- One row, reading the window vars as the marts do.
select '{{ var("min_date") }}' as min_date, '{{ var("max_date") }}' as max_date
