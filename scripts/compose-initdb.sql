CREATE DATABASE factorybench OWNER airflow;
