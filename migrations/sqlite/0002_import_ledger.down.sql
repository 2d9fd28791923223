DROP TABLE ferry_import_runs;
DROP TABLE ferry_source_files;
