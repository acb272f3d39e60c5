-- Omny programs (podcasts) and their network, as last seen in the download events.
{{ config(incremental_strategy='delete+insert', unique_key='program_id') }}
{{ dimension('program_id', ['program_name', 'network_id', 'network_name'], ref('stg_omny__downloads'), 'downloaded_at') }}
