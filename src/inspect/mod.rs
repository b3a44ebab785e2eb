//! Pure parsers and renderers of boot-relevant files of the target OS (parse → edit → render).
