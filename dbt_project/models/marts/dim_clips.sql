-- Omny clips (episodes): program, title and audio duration, as last seen.
{{ config(incremental_strategy='delete+insert', unique_key='clip_id') }}
{{ dimension('clip_id', ['program_id', 'clip_title', 'clip_audio_duration_seconds', 'playlist_id', 'playlist_title'], ref('stg_omny__downloads'), 'downloaded_at') }}
