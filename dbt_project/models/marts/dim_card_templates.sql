-- Atomic card templates: name and latest version seen (an hourly fold: macros/dimension.sql).
{{ dimension('card_template_id', ['card_template_name', 'card_template_version'], 'stg_atomic__events', 'event_ts') }}
