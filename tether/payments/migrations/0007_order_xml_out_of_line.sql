-- An order's XML (about 2 KB) is stored out of line and uncompressed.
--
-- An order row is written once and updated three times (claimed, sent, answered). Inline, the
-- XML was compressed (pglz) on insert and its ~1 KB copied into every new row version and the
-- WAL; out of line, an update copies an 18-byte pointer to the unchanged value, and the insert
-- skips the compression. The XML is read only to send it and to show it.
ALTER TABLE pay.oppdrag ALTER COLUMN xml SET STORAGE EXTERNAL;
