-- Omny programs (podcasts) and their network, as last seen in the download events (an hourly fold: macros/dimension.sql).
{{ dimension('program_id', ['program_name', 'network_id', 'network_name'], 'stg_omny__downloads', 'downloaded_at') }}
