-- Atomic card templates: name and latest version seen.
{{ config(incremental_strategy='delete+insert', unique_key='card_template_id') }}
{{ dimension('card_template_id', ['card_template_name', 'card_template_version'], ref('stg_atomic__events'), 'event_ts') }}
