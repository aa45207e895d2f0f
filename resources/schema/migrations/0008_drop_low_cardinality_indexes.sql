-- The btrees on canonical.entities' source_system and entity_type (three values each) served no query:
-- a third of the table per value, so every plan scans anyway (count_analysis, the integrity probes, the
-- segment operations read the whole table; nothing selects by them alone). Each still cost a btree
-- insert per loaded row (bench/schema_measurements.md). entities_industry_idx stays: dozens of industries make
-- `WHERE industry = …` (custom queries, the API's filters) selective enough for a bitmap scan.
DROP INDEX IF EXISTS canonical.entities_source_system_idx;
DROP INDEX IF EXISTS canonical.entities_entity_type_idx;
